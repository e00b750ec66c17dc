{
  "targets": [
    {
      "target_name": "dockless",
      "sources": [
        "native/addon.c",
        "native/spec.c",
        "native/spawn.c",
        "native/clone.c",
        "native/child.c",
        "native/mounts.c",
        "native/security.c",
        "native/watch.c",
        "native/misc.c",
        "native/fsops.c",
        "native/error.c"
      ],
      "cflags": ["-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "cflags!": ["-fno-exceptions"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
