"""Connecting social accounts: one module per platform (how it connects), the OAuth 2.0 they
share, saving an account and refreshing its tokens."""
