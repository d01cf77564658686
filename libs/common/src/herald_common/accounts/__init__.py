"""Connected social accounts: OAuth clients, token storage and refresh."""
