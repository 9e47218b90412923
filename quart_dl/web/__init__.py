"""The Quart app: routes (REST, streams, the panel's files) and the checks every request
passes (Host, token, CORS, limits, JSON errors). It reads the hub and the instances; it never
talks to qBittorrent."""
