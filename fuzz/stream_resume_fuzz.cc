// libFuzzer target for stream resume (dataplane/stream_filter.h, stream_resume.h): an
// upstream SSE body in arbitrary pieces through StreamFilter, then a continuation request
// built from an arbitrary client body and a second stream spliced in as the continuation.
// Checked: on a first attempt whose client asked for usage nothing is changed — what
// reaches the client is exactly a prefix of the upstream body (whole events only);
// a continuation body llmgw builds, and the include_usage body, are valid JSON objects
// whenever the client's body was one; every event llmgw rewrites has one data line with a
// JSON object and ends with a blank line.
//
// Input: byte 0 = flags (bit 0 chat, bit 1 the client asked for usage, bit 2 resume on),
// bytes 1-2 = body length L (little endian, bounded by the input); then L bytes of client
// body, then the stream. The stream is fed in pieces cut at every 0xFF byte; a 0xFE byte
// separates the first attempt's stream from the continuation's.
#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dataplane/buffer_pool.h"
#include "dataplane/stream_filter.h"
#include "dataplane/stream_resume.h"

namespace {

bool JsonObject(std::string_view s) {
  rapidjson::Document d;
  d.Parse(s.data(), s.size());
  return !d.HasParseError() && d.IsObject();
}

// ParseChunk's own reader, a ChunkShapeMemo fed the payloads in order, and RapidJSON's
// (ParseChunkFull) must agree on every payload.
void SameAsFullParse(std::string_view json, llmgw::dataplane::ChunkShapeMemo* memo) {
  llmgw::dataplane::ChunkInfo a, b, c;
  bool x = llmgw::dataplane::ParseChunk(json, &a), y = llmgw::dataplane::ParseChunkFull(json, &b);
  bool z = memo->Parse(json, &c);
  if (x != y || !(a == b) || z != y || !(c == b)) std::abort();
}

// Feeds `stream` cut at 0xFF bytes; emitted bytes go to *out; `rewritten` checks events
// that came out of the scratch buffer (llmgw's own bytes).
void Feed(llmgw::dataplane::StreamFilter* f, std::string_view stream, std::string* scratch, std::string* out) {
  size_t start = 0;
  for (size_t i = 0; i <= stream.size(); ++i) {
    if (i < stream.size() && static_cast<unsigned char>(stream[i]) != 0xFF) continue;
    std::string_view piece = stream.substr(start, i - start);
    start = i + 1;
    f->OnPiece(piece, scratch, [&](std::string_view b) {
      bool ours = !scratch->empty() && b.data() >= scratch->data() && b.data() < scratch->data() + scratch->size();
      if (ours) {
        // One rewritten event: its single data line is a JSON object, and it ends with a
        // blank line (the source's other lines and line endings kept).
        llmgw::dataplane::SseEventView v;
        llmgw::dataplane::SplitEvent(b, &v);
        if (v.data_lines != 1 || !JsonObject(v.data)) std::abort();
        if (b.size() < 2 || (b.back() != '\n' && b.back() != '\r')) std::abort();
      }
      out->append(b);
    });
  }
  // Every event's payload (and the whole stream) read both ways.
  llmgw::dataplane::ChunkShapeMemo memo;
  SameAsFullParse(stream, &memo);
  for (size_t pos = 0; (pos = stream.find("data:", pos)) != std::string_view::npos; pos += 5) {
    size_t eol = stream.find('\n', pos);
    std::string_view d = stream.substr(pos + 5, eol == std::string_view::npos ? std::string_view::npos : eol - pos - 5);
    if (!d.empty() && d.front() == ' ') d.remove_prefix(1);
    SameAsFullParse(d, &memo);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmgw::dataplane;
  if (size < 3) return 0;
  const bool chat = data[0] & 1, wants_usage = data[0] & 2, resume = data[0] & 4;
  size_t body_len = static_cast<size_t>(data[1]) | static_cast<size_t>(data[2]) << 8;
  if (body_len > size - 3) body_len = size - 3;
  std::string_view body(reinterpret_cast<const char*>(data) + 3, body_len);
  std::string_view rest(reinterpret_cast<const char*>(data) + 3 + body_len, size - 3 - body_len);
  size_t sep = rest.find('\xFE');
  std::string_view first = rest.substr(0, sep), second = sep == std::string_view::npos ? "" : rest.substr(sep + 1);

  static BufferPool pool;
  StreamFilter f;
  StreamFilter::Options o;
  o.resume = resume;
  o.client_wants_usage = wants_usage;
  o.chat = chat;
  o.resume_max_bytes = 4096;
  f.Begin(&pool, o);
  std::string scratch, out;
  Feed(&f, first, &scratch, &out);
  if (wants_usage) {
    // Nothing is rewritten or dropped on a first attempt: a prefix of what came, without
    // the 0xFF cut markers.
    std::string plain;
    for (char c : first)
      if (static_cast<unsigned char>(c) != 0xFF) plain.push_back(c);
    if (plain.compare(0, out.size(), out) != 0) std::abort();
  }

  std::string built;
  bool body_ok = JsonObject(body);
  if (EnsureIncludeUsage(body, chat ? "other-model" : "", &built) && body_ok && !JsonObject(built)) std::abort();
  f.AttemptFailed();
  if (f.CanResume() == llmgw::ResumeOutcome::kOk) {
    if (BuildContinuation(body, chat, "m", f.state(), &built) == llmgw::ResumeOutcome::kOk && body_ok &&
        !JsonObject(built))
      std::abort();
    out.clear();
    Feed(&f, second, &scratch, &out);
  }
  f.Release();
  return 0;
}
