"""The command-line programs (`stacnas-search`, `stacnas-train`, ...; under
Bazel `//tools:search`, ...): absl flags -> a config -> one library call."""
