"""The peers quart-dl is measured against, each behind the same control socket."""
