"""Benchmarks (`lipstream bench ...`) and the instruments they share with the tests (`benchmarks.kit`)."""
