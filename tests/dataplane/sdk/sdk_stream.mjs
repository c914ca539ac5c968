// Streams one chat completion through the official OpenAI Node SDK, unmodified, and
// prints what the SDK made of it (the stream resume test: a stream continued on another
// backend must look like any other). Usage: node sdk_stream.mjs BASE_URL.
// Prints one JSON line; exits non-zero on any SDK error.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0, timeout: 10000 });
const stream = await client.chat.completions.create({
  model: "m1",
  messages: [{ role: "user", content: "tell me a story" }],
  stream: true,
  stream_options: { include_usage: true },
});
const out = { text: "", ids: [], roles: 0, finish: null, usage: null };
for await (const chunk of stream) {
  if (!out.ids.includes(chunk.id)) out.ids.push(chunk.id);
  if (chunk.usage) out.usage = chunk.usage;
  const c = chunk.choices[0];
  if (!c) continue;
  if (c.delta?.role) out.roles++;
  out.text += c.delta?.content ?? "";
  if (c.finish_reason) out.finish = c.finish_reason;
}
console.log(JSON.stringify(out));
