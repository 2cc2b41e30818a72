"""RMVPE vocal pitch task (deep U-Net + BiGRU over 360 cent bins). Heavy modules are imported lazily."""
