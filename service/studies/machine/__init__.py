"""The machine annotator: the Machine Interpretability Score of 2-AFC tasks from image embeddings.

``score`` holds the arithmetic (no database, no network); ``trials`` reads 2-AFC trials laid
out as folders of images, as the IMI dataset and its experiment code store them. Inside a
study: ``shown`` embeds what stored 2-AFC trials showed, ``rate`` makes machine annotators answer
a study's trials, ``calibrate`` fits α and the lapse rate to the study's people.
"""
