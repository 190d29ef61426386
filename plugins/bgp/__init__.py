"""The BGP announcer: MetalLB's BGPPeer/BGPAdvertisement/BFDProfile/Community announced through FRR."""
