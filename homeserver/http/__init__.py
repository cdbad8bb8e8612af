"""HTTP plumbing shared by the client and federation APIs: middleware and body parsing."""
