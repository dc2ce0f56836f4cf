"""cdp_tutorial: complexity-driven CNN compression, taught in notebooks and implemented in Keras 3."""

__version__ = "0.1.0"
