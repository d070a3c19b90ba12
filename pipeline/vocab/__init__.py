"""The metadata vocabulary: loading it, building it from its sources, measuring its coverage."""
