"""Scale-out: batch classification into Parquet, locally or on Ray Data (the [scale] extra)."""
