"""The AI writing assistant: drafts, rewrites, per-platform variants, alt text and content
plans through any OpenAI-compatible model (DESIGN.md, "What comes next": AI)."""
