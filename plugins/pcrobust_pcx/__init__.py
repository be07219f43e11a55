"""PCX-style family: networks trained with predictive-coding learning rules, and PC inference on computation graphs."""
