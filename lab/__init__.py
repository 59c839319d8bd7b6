"""Federated Privacy Lab: federated category discovery (FedLPA) and user-level DP, as a plain library.

Shape of the library (each arrow is a module):
  data -> partition -> clients -> (CLSD -> InfoMap -> prior/LPA -> local training) -> FedAvg -> metrics -> viz
  users -> contribution bound -> sampling -> clipping -> noise -> accountant -> privacy-utility curve
"""
__version__ = "0.1.0"
