"""The agent loop: snapshot -> strategy -> plan -> guard -> simulate -> check -> execute."""
