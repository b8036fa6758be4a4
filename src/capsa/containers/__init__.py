"""Containers: SIF images and the runtimes that run a step inside one."""
