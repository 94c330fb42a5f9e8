"""Auth service: accounts, sessions, profile and agreements."""
