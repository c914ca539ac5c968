// The provider instances, each defined in its own file (openai.cc, azure.cc, anthropic.cc,
// gemini.cc) and handed out by ProviderFor (provider.cc).
#pragma once

#include "common/providers/provider.h"

namespace llmgw::providers {

const Provider& OpenAiProvider();
const Provider& AzureProvider();
const Provider& AnthropicProvider();
const Provider& GeminiProvider();

}  // namespace llmgw::providers
