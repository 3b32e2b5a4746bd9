"""emorec: continuous emotion recognition (valence, arousal) with spatiotemporal CNNs.

A runnable reproduction of Teixeira, Granger & Koerich (2021), "Continuous Emotion Recognition
with Spatiotemporal Convolutional Neural Networks". Modules follow the paper's sections; see
``_toc.yml`` for the chapter that shows each one at work.
"""

__version__ = "0.1.0"
