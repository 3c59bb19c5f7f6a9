"""AquaTech's activity pipeline: raw app-event pulls to event_data, DAU, MAU and activity."""
