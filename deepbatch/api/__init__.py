"""The public verbs, one module each: :mod:`~deepbatch.api.extract` (``extract_faces``), :mod:`~deepbatch.api.detect`
(``detect``), :mod:`~deepbatch.api.represent`, :mod:`~deepbatch.api.verify` and :mod:`~deepbatch.api.find`; each is a
thin edge over :mod:`deepbatch.core.stream`. ``import deepbatch`` gives the functions themselves (this package names
no function, so that a module and the function it holds never share an attribute)."""
