"""The detectors behind ControlNet preprocessors: one small function per preprocessor."""
