"""The BGP interface, defined and exercised: computes sessions and routes, speaks no BGP yet."""
