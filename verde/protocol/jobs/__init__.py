"""Jobs: content-addressed job specs, the program registry, built-in programs and datasets."""
