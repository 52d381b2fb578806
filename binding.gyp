{
  "targets": [
    {
      "target_name": "laborspace_native",
      "sources": [
        "native/src/dispatch.cpp",
        "native/src/kernels_scalar.cpp",
        "native/src/kernels_avx2.cpp",
        "native/src/kernels_avx512.cpp",
        "native/src/gemm.cpp",
        "native/src/parallel.cpp",
        "native/src/scoring.cpp",
        "native/src/probes.cpp",
        "native/src/training.cpp",
        "native/src/encoder.cpp",
        "native/src/addon/args.cpp",
        "native/src/addon/device.cpp",
        "native/src/addon/scoring.cpp",
        "native/src/addon/training.cpp",
        "native/src/addon/encoder.cpp",
        "native/src/addon/module.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fexceptions"],
      "ldflags": ["-pthread"],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3", "-fno-math-errno"] }
    }
  ]
}
