"""The derivation: rewrite rules, and the engine that applies them and records each step."""
