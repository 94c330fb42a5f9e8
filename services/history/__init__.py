"""History service: the emotion centre's records, trends and consented sharing."""
