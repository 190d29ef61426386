"""The lab: private network namespaces (a bridge, nodes, a client) for `metalloid demo`, the lab tests
and the benchmarks.
"""
