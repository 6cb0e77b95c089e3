"""symbench: adversarial-robustness benchmark harness for symmetry-aware image classifiers."""
__version__ = "0.1.0"
