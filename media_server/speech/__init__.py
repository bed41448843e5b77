"""Speech into the edge: decoding and resampling, audio features, utterances, the timeline, live feeds."""
