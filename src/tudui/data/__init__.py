"""One LightningDataModule per data source, all feeding :class:`tudui.classifier.ImageClassifier`.

- :mod:`tudui.data.cifar10`, :mod:`tudui.data.digits`: small sets held in memory as tensors
- :mod:`tudui.data.image_folder`: class folders and the tutorial's label-file folders

Nothing is imported here, so that ``predict.py`` can read images and build transforms
(:mod:`tudui.data.images`, :mod:`tudui.data.transforms`) without loading Lightning.
"""
