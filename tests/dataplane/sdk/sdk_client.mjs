// Drives llmgw with the official OpenAI Node SDK, unmodified: a non-streaming chat
// completion, a streamed one, the model list and models.retrieve. Usage: node sdk_client.mjs BASE_URL.
// Prints one JSON line with what it saw; exits non-zero on any SDK error.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0, timeout: 5000 });
const out = {};
const chat = await client.chat.completions.create({
  model: "alias1",
  messages: [{ role: "user", content: "hi" }],
});
out.content = chat.choices[0].message.content;
out.completion_tokens = chat.usage.completion_tokens;
const stream = await client.chat.completions.create({
  model: "m1",
  messages: [{ role: "user", content: "hi" }],
  stream: true,
});
out.deltas = [];
for await (const chunk of stream) out.deltas.push(chunk.choices[0]?.delta?.content ?? "");
const models = await client.models.list();
out.models = models.data.map((m) => m.id);
const retrieved = await client.models.retrieve("alias1");
out.retrieved = { id: retrieved.id, root: retrieved.root };
try {
  await client.models.retrieve("ghost");
} catch (e) {
  out.retrieve_missing_status = e.status;
}
try {
  await client.chat.completions.create({ model: "ghost", messages: [] });
} catch (e) {
  out.error_status = e.status;
  out.error_code = e.code;
}
console.log(JSON.stringify(out));
