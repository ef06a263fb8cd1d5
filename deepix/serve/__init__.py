"""The HTTP service and its web page: deepix serve RUN [RUN ...]."""
