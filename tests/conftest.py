"""Test isolation for real DDS traffic: localhost only, and a domain id of this run's own."""
import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Several test runs on one machine must not hear each other: domain from the pid (0..100 is safe
# for Fast DDS port arithmetic on loopback).
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
