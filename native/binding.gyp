{
  "targets": [
    {
      "target_name": "tunstack",
      "sources": ["tunstack.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "conditions": [
        ["OS!='linux'", { "sources!": ["tunstack.c"], "type": "none" }]
      ]
    }
  ]
}
