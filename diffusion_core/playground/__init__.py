"""What app.py and the widgets adapt (never gradio itself): the model store and live runs, recordings and
replay, the pictures of each frame, the How it works lesson, sketches, the editing views and the 2D lab.
"""
