"""The layer 2 announcer plugin: ARP (IPv4) and NDP (IPv6), MetalLB's layer 2 mode."""
