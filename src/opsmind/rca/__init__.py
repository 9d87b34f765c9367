"""Root-cause ranking: which services and metrics most likely caused a fault, with evidence."""
