/* pixltoken 1.0 -> 1.1 — upgrade script, assembled from src/sql/1.0--1.1/ by the Makefile. */

\echo Use "ALTER EXTENSION pixltoken UPDATE TO '1.1'" to load this file. \quit

