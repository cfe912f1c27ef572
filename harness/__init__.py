"""fairgen-harness: a plugin-based benchmark for fairness-aware generative augmentation.

This module is the public plugin API: what a plugin module may import.
"""
from harness.contracts import Classifier, ConfigError, Dataset, Generator, PluginBase
from harness.data import REAL, DataError, ImageSet, Splits
from harness.hookspecs import hookimpl
from harness.groups import with_intersection
from harness.scenarios import (Cap, HoldoutKeys, LongTail, MinorityFraction, MinorityPerClass, Natural, OneSitePerClass,
                               Scenario, default_scenarios, site_scenarios)

__version__ = "0.1.0"

__all__ = ["Classifier", "ConfigError", "Dataset", "Generator", "PluginBase", "REAL", "DataError", "ImageSet",
           "Splits", "hookimpl", "Cap", "HoldoutKeys", "LongTail", "MinorityFraction", "MinorityPerClass", "Natural",
           "OneSitePerClass", "Scenario", "default_scenarios", "site_scenarios", "with_intersection", "__version__"]
