"""`lipstream bench network`: a talking session through a rate-limited link (a private network namespace)."""
