"""The brand's stores: loaded from a file, the nearest open ones answered to a follower's location."""

from .api import any_stores, describe_stores, reported_position, shared_position, stores_near
from .geo import distance_m, gcj02_to_wgs84, to_wgs84, wgs84_to_gcj02
from .models import Store
from .nearest import NearbyStore, list_stores, nearest_stores, replace_stores
from .spec import StoresFile, StoresFileError, parse_stores

__all__ = ["NearbyStore", "any_stores", "describe_stores", "reported_position", "shared_position", "stores_near", "Store", "StoresFile", "StoresFileError", "distance_m", "gcj02_to_wgs84", "list_stores",
           "nearest_stores", "parse_stores", "replace_stores", "to_wgs84", "wgs84_to_gcj02"]
