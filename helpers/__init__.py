"""The course's helper package: what a learner should not have to retype.

One module per concept (see DESIGN.md): ``assets``, ``platform``, ``chat_data``, ``tokens``,
``imdb``, ``classifier``, ``metrics``, ``azure``, ``emulator``. Import the one you need::

    from helpers import tokens
"""

__version__ = "0.1.0"
