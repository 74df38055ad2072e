"""The work of the stages whose pieces span several packages (sampling with an optional MLFF hook, the
sampling-time comparison, the sample exports); ``elign.cli`` only parses their arguments."""
