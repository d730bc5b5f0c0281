"""Recorded traffic: the flow model, the recorder pipeline, stores, the filter language, HAR."""
