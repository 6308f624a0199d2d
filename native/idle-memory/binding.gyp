{
  "targets": [
    {
      "target_name": "idle_memory",
      "sources": ["idle_memory.cc"]
    }
  ]
}
