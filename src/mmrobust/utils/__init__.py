"""Small helpers shared across subpackages (seeding, atomic files, environment versions)."""
