"""Allocating: which Service gets which IP. `allocator.allocate` is pure (MetalLB semantics); `worker`
is its process shell, `statefile` its persistence.
"""
