// Lists a server's services through gRPC server reflection (v1alpha), the way grpcurl
// does, without generated reflection stubs: Debian ships the reflection service in
// libgrpc++_reflection but not its .proto/.pb.h, so the two tiny messages involved are
// encoded and decoded by hand.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/sync_stream.h>

#include <string>
#include <vector>

namespace llmgw::cp::testing {

inline bool ReadVarint(const std::string& s, size_t* i, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *i < s.size(); shift += 7) {
    uint8_t b = static_cast<uint8_t>(s[(*i)++]);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// Calls fn(field, bytes) for each length-delimited field of a message; skips the rest.
template <typename F>
inline bool ForEachLenField(const std::string& s, F fn) {
  size_t i = 0;
  while (i < s.size()) {
    uint64_t key, v;
    if (!ReadVarint(s, &i, &key)) return false;
    switch (key & 7) {
      case 0: if (!ReadVarint(s, &i, &v)) return false; break;
      case 1: i += 8; break;
      case 5: i += 4; break;
      case 2:
        if (!ReadVarint(s, &i, &v) || i + v > s.size()) return false;
        fn(static_cast<int>(key >> 3), s.substr(i, v));
        i += v;
        break;
      default: return false;
    }
  }
  return true;
}

struct ReflectionListing {
  grpc::Status status;
  std::vector<std::string> services;
  bool got_error_response = false;
};

// One request/response exchange on the reflection stream; returns the raw responses.
inline grpc::Status ReflectionExchange(const std::shared_ptr<grpc::Channel>& ch, const std::string& request,
                                       const std::string& token, std::vector<std::string>* responses) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  grpc::internal::RpcMethod method("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                   grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(ch.get(), method, &ctx));
  grpc::Slice slice(request);
  grpc::ByteBuffer bb(&slice, 1);
  stream->Write(bb);
  stream->WritesDone();
  grpc::ByteBuffer resp;
  while (stream->Read(&resp)) {
    std::vector<grpc::Slice> slices;
    (void)resp.Dump(&slices);
    std::string bytes;
    for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    responses->push_back(std::move(bytes));
  }
  return stream->Finish();
}

// Serialized FileDescriptorProtos of the file defining `symbol` (and its dependencies),
// as grpcurl fetches them before calling a method it has no .proto for.
inline grpc::Status FileContainingSymbol(const std::shared_ptr<grpc::Channel>& ch, const std::string& symbol,
                                         const std::string& token, std::vector<std::string>* files) {
  // ServerReflectionRequest{ file_containing_symbol (field 4) = symbol }
  std::string req;
  req.push_back(0x22);
  req.push_back(static_cast<char>(symbol.size()));  // symbols here are < 128 bytes
  req += symbol;
  std::vector<std::string> responses;
  grpc::Status st = ReflectionExchange(ch, req, token, &responses);
  for (const auto& r : responses)
    ForEachLenField(r, [&](int field, const std::string& body) {
      if (field != 4) return;  // file_descriptor_response
      ForEachLenField(body, [&](int f2, const std::string& fd) {
        if (f2 == 1) files->push_back(fd);
      });
    });
  return st;
}

inline ReflectionListing ListServices(const std::shared_ptr<grpc::Channel>& ch, const std::string& token = "") {
  ReflectionListing out;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  grpc::internal::RpcMethod method("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                   grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(ch.get(), method, &ctx));
  // ServerReflectionRequest{ list_services (field 7) = "" }
  std::string req("\x3a\x00", 2);
  grpc::Slice slice(req);
  grpc::ByteBuffer bb(&slice, 1);
  stream->Write(bb);
  stream->WritesDone();
  grpc::ByteBuffer resp;
  while (stream->Read(&resp)) {
    std::vector<grpc::Slice> slices;
    (void)resp.Dump(&slices);
    std::string bytes;
    for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    ForEachLenField(bytes, [&](int field, const std::string& body) {
      if (field == 7) out.got_error_response = true;
      if (field != 6) return;  // list_services_response
      ForEachLenField(body, [&](int f2, const std::string& svc) {
        if (f2 != 1) return;
        ForEachLenField(svc, [&](int f3, const std::string& name) {
          if (f3 == 1) out.services.push_back(name);
        });
      });
    });
  }
  out.status = stream->Finish();
  return out;
}

}  // namespace llmgw::cp::testing
