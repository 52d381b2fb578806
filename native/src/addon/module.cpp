// The addon's entry: every area sets its functions on the exports.
#include "exports.h"

namespace {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  laborspace::addon::export_device(env, exports);
  laborspace::addon::export_scoring(env, exports);
  laborspace::addon::export_training(env, exports);
  laborspace::addon::export_encoder(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(laborspace_native, init)
