"""The node agent: CNI handler, state store, unix-socket server and service supervision."""
