"""Model-independent array operations: letterboxing, box decoding, NMS, alignment, chunking."""
