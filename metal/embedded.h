// Metal kernel sources compiled into the extension: metal/embed.py inlines
// each metal/kernels/<family>.metal with the headers it includes and
// defines `flashsnn::metal::<family>_metal_source` at build time.
#pragma once

namespace flashsnn::metal {

struct EmbeddedSource {
  const char* library;  // MLX library cache key: flashsnn_<family>_<source hash>
  const char* source;   // the whole Metal source, includes inlined
};

}  // namespace flashsnn::metal
