import warnings

# oslo.messaging imports oslo.service's eventlet backend, which warns on
# import although the collector never uses eventlet.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
